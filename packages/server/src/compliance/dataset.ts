import { join } from 'node:path';
import { openDataset, type CveDatabase } from '@livegraft/inspector';

/** A refreshed dataset written by `livegraft cve import --dataset <data-dir>/cves.json.gz`. */
export const DATASET_FILE = 'cves.json.gz';

/** The CVE dataset the server evaluates kernels with: <dataDir>/cves.json.gz if present, else the shipped one. */
export function loadServerDataset(dataDir: string): Promise<CveDatabase> {
  return openDataset(join(dataDir, DATASET_FILE));
}
