#!/usr/bin/env node
// Runs the control plane from its TypeScript source through tsx's loader.
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
