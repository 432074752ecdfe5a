#!/usr/bin/env node
/**
 * @module flashpods
 * The `flashpods` command. Flashpods runs its TypeScript through tsx (no build step to drift
 * from the source); this launcher registers it and hands over to cli/main.ts.
 */
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
