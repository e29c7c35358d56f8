import { fleetSuite } from './fleet-suite.ts';

fleetSuite('SQLite', () => Promise.resolve(undefined));
