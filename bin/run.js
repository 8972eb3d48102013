#!/usr/bin/env node
import { execute } from '@oclif/core';
import { guardExit } from '../dist/cli/exit-guard.js';

// Registered before anything else loads, so no dependency's exit hook can turn a stalled command into exit 0.
const guard = guardExit(process.argv[2] ?? 'sentiment');
await execute({ dir: import.meta.url });
guard.finished();
