#!/usr/bin/env node
// Runs the control plane: its compiled bundle (dist/control-plane/dist/bin/dray-control-plane.mjs
// at the repository root, written by `pnpm build`) when that is newer than every source it is
// built from, else the TypeScript source through tsx. DRAY_FROM_SOURCE=1 forces the source. The
// rule and its settings: common/bin/bundle-or-source.mjs.
import { runProcess } from "../../common/bin/bundle-or-source.mjs";

await runProcess("dray-control-plane");
