/**
 * @semantica/client: the TypeScript client of the Semantica daemon (API.md).
 * It finds a local daemon by itself, calls every method of the contract with typed
 * params and results, and throws one error class per contract error code.
 */
export * from './client.js';
export * from './ensure.js';
export * from './errors.js';
export * from './types.js';
export { resolveEndpoint, homeDirectory, type Endpoint, type EndpointOptions } from './transport.js';
