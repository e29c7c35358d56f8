export { parseConfig, ConfigSchema, type Config, type LogLevel } from './config.ts';
export { createServer, startServer, type ServerDeps, type LivegraftServer, type RunningServer } from './server.ts';
export type { ModuleUploadResponse } from './routes/modules.ts';
export { STATUS_OF_CODE } from './errors.ts';
export { ADMIN_TOKEN_FILE, REGISTRATION_KEY_FILE } from './secrets.ts';
export { migrations } from './db/migrations.ts';
