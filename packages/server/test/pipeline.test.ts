import { pipelineSuite } from './pipeline-suite.ts';

pipelineSuite('SQLite', () => Promise.resolve(undefined));
