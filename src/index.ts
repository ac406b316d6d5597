// The library surface: embed the gateway or the simulator in your own process.
export { Gateway, type GatewayOptions, type HealthReport } from './gateway.js';
export { loadConfig, checkConfigFile, ConfigError, OPTIONS } from './config/load.js';
export type { GatewayConfig, BackendConfig } from './config/schema.js';
export { GatewayError, ERRORS, type ErrorCode } from './errors.js';
export { Simulator, type SimulatorOptions, type Faults } from './simulator/simulator.js';
