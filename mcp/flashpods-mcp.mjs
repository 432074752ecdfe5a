#!/usr/bin/env node
/**
 * @module flashpods-mcp
 * The `flashpods-mcp` command: the MCP stdio shim on the laptop. Like cli/flashpods.mjs, it
 * registers tsx (no build step) and hands over to mcp/main.ts.
 */
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
