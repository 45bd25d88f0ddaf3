#!/usr/bin/env node
// Runs the agent from its TypeScript source through tsx's loader.
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
