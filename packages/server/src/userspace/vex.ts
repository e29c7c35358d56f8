import { PackageURL } from 'packageurl-js';
import type { UserspaceLevelRecord, UserspaceLibraryStatus } from '@livegraft/protocol';
import type { VexProduct, VexStatement } from '../compliance/vex.ts';
import type { UserspaceRepository } from './repository.ts';

/** A host whose user-space libraries the statements cover. */
export interface UserspaceVexHost {
  id: string;
  hostname: string;
}

/**
 * The product a user-space statement is about: one library build (by
 * build-id) on one host; the Debian package purl is a subcomponent, for
 * scanners that match installed packages.
 */
function libraryProduct(
  host: UserspaceVexHost,
  lib: UserspaceLibraryStatus,
  level: UserspaceLevelRecord | undefined,
): VexProduct {
  const purl = new PackageURL('generic', undefined, lib.soname, lib.buildId, {
    build_id: lib.buildId,
    host: host.hostname,
    host_id: host.id,
  }).toString();
  const product: VexProduct = { '@id': purl, identifiers: { purl } };
  if (level !== undefined) {
    const deb = new PackageURL('deb', 'debian', level.package, level.version, { arch: 'amd64' }).toString();
    product.subcomponents = [{ '@id': deb, identifiers: { purl: deb } }];
  }
  return product;
}

/**
 * OpenVEX statements for the user-space libraries hosts reported: `fixed`
 * for the CVEs of the level applied in every process that maps the build,
 * `affected` for CVEs of that level while some processes still run the old
 * code (unpatched or refused), and for CVEs of published levels not applied.
 */
export async function userspaceVexStatements(
  repo: UserspaceRepository,
  hosts: readonly UserspaceVexHost[],
): Promise<VexStatement[]> {
  const all = await repo.allHostLibraries();
  const levels = await repo.list();
  const byBuild = new Map<string, UserspaceLevelRecord[]>();
  for (const l of levels) byBuild.set(l.buildId, [...(byBuild.get(l.buildId) ?? []), l]);
  const grouped = new Map<string, VexStatement>();
  const add = (key: string, make: () => VexStatement, product: VexProduct): void => {
    let s = grouped.get(key);
    if (s === undefined) {
      s = make();
      grouped.set(key, s);
    }
    s.products.push(product);
  };
  for (const host of hosts) {
    for (const lib of all.get(host.id) ?? []) {
      const mine = byBuild.get(lib.buildId) ?? [];
      const applied = mine.find((l) => l.level === lib.level);
      const product = libraryProduct(host, lib, applied ?? mine[0]);
      const open = lib.unpatched + lib.refused;
      for (const cve of lib.level > 0 ? lib.cves : []) {
        if (open === 0) {
          const note = `Fixed in the ${lib.patched} running process(es) that map ${lib.soname} (build-id ${lib.buildId}) by livegraft user-space level ${lib.level}. The installed package is unchanged: upgrade it so that processes started later load the fixed library.`;
          add(
            `fixed\0${cve}\0${note}`,
            () => ({ vulnerability: { name: cve }, products: [], status: 'fixed', status_notes: note }),
            product,
          );
        } else {
          const action = `${open} process(es) mapping ${lib.soname} (build-id ${lib.buildId}) still run the unpatched code (${lib.unpatched} not yet patched, ${lib.refused} refused): restart them or resolve the refusals (livegraft-agent userspace status).`;
          add(
            `affected\0${cve}\0${action}`,
            () => ({
              vulnerability: { name: cve },
              products: [],
              status: 'affected',
              status_notes: `live patched in ${lib.patched} process(es) by user-space level ${lib.level}`,
              action_statement: action,
            }),
            product,
          );
        }
      }
      const have = new Set(lib.level > 0 ? lib.cves : []);
      for (const l of mine) {
        if (!l.published || l.halted || l.level <= lib.level) continue;
        for (const cve of l.cves.filter((c) => !have.has(c))) {
          have.add(cve);
          const action = `Apply livegraft user-space level ${l.level} for ${lib.soname} (build-id ${lib.buildId}), which fixes ${cve}, or upgrade ${l.package} and restart the processes that map it.`;
          add(
            `affected\0${cve}\0${action}`,
            () => ({ vulnerability: { name: cve }, products: [], status: 'affected', action_statement: action }),
            product,
          );
        }
      }
    }
  }
  return [...grouped.values()].sort(
    (a, b) => a.status.localeCompare(b.status) || a.vulnerability.name.localeCompare(b.vulnerability.name),
  );
}

/** The document with the user-space statements of `hosts` added beside the kernel's. */
export async function withUserspaceStatements<D extends { statements: VexStatement[] }>(
  doc: D,
  repo: UserspaceRepository | undefined,
  hosts: readonly UserspaceVexHost[],
): Promise<D> {
  if (repo === undefined) return doc;
  const more = await userspaceVexStatements(repo, hosts);
  return more.length === 0 ? doc : { ...doc, statements: [...doc.statements, ...more] };
}
