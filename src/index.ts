// The package entry for programs that embed Outrigger. Importing it starts nothing: the
// `outrigger` command is dist/main.js, and start() is the same function it runs.
export { start, type Outrigger, type StartOptions } from './app.js';
export { ConfigError, loadConfigFile, loadConfigText, resolveConfigPath, type EffectiveConfig, type LoadedConfig } from './config/load.js';
