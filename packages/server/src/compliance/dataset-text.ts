import type { CveDatasetStatus } from '@livegraft/protocol';

/** Characters per line of the PDF report's body text. */
const WIDTH = 140;

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const word of text.split(/\s+/)) {
    if (cur !== '' && cur.length + 1 + word.length > width) {
      out.push(cur);
      cur = `  ${word}`;
    } else cur = cur === '' ? word : `${cur} ${word}`;
  }
  if (cur !== '') out.push(cur);
  return out;
}

/** The report's lines about the CVE data: its size and age, then each warning. */
export function datasetLines(ds: CveDatasetStatus): string[] {
  const age = ds.ageDays === null ? 'age unknown' : `${ds.ageDays} days old`;
  return [
    ...wrap(
      `CVE data: ${ds.cves} kernel CVEs; kernel CVE records as of ${ds.cveRecordsAsOf ?? 'unknown'}, ` +
        `Debian changelogs as of ${ds.debianAsOf ?? 'unknown'} (${age}${ds.stale ? ', stale' : ''}); ` +
        `dataset written ${ds.generatedAt}`,
      WIDTH,
    ),
    ...ds.warnings.flatMap((w) => wrap(`Warning: ${w.message}`, WIDTH)),
  ];
}
