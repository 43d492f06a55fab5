/**
 * A small Dockerfile linter for the rules that matter to our one image (hadolint is not packaged
 * for Debian, and nothing may be fetched from outside the registries). Rule ids follow hadolint's
 * where one exists, so a reader can look the reason up.
 *
 * @example
 *   lintDockerfile(readFileSync('infra/docker/Dockerfile', 'utf8')) // => [] or ['line 12 DL3015: ...']
 */

export interface Instruction {
  line: number;
  keyword: string;
  args: string;
  /** Comments directly above the instruction (without '#'). */
  comments: string[];
}

/** Instructions with continuation lines joined; comments kept with the instruction they precede. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  let comments: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw === '') continue;
    if (raw.startsWith('#')) {
      comments.push(raw.replace(/^#\s?/, ''));
      continue;
    }
    const start = i;
    let full = raw;
    while (full.endsWith('\\') && i + 1 < lines.length) {
      i++;
      const next = lines[i].trim();
      if (next.startsWith('#')) continue;
      full = full.slice(0, -1).trimEnd() + ' ' + next;
    }
    const m = /^(\S+)\s*(.*)$/.exec(full);
    if (m) out.push({ line: start + 1, keyword: m[1].toUpperCase(), args: m[2], comments });
    comments = [];
  }
  return out;
}

/** Resolve `${NAME}` / `$NAME` from ARGs declared before the first FROM (their defaults). */
function resolveArgs(value: string, args: Map<string, string>): string {
  return value.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (whole, name: string) => args.get(name) ?? whole);
}

export function lintDockerfile(text: string): string[] {
  const problems: string[] = [];
  const ins = parseDockerfile(text);
  const report = (i: Instruction, rule: string, msg: string): void => {
    problems.push(`line ${i.line} ${rule}: ${msg}`);
  };
  const args = new Map<string, string>();
  const stages = new Set<string>();
  let lastFrom = -1;

  ins.forEach((i, idx) => {
    switch (i.keyword) {
      case 'ARG': {
        const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/.exec(i.args.trim());
        if (m && lastFrom < 0) args.set(m[1], (m[2] ?? '').replace(/^"|"$/g, ''));
        break;
      }
      case 'FROM': {
        lastFrom = idx;
        const parts = i.args.split(/\s+/).filter((p) => !p.startsWith('--'));
        const image = resolveArgs(parts[0] ?? '', args);
        if (parts[1]?.toUpperCase() === 'AS' && parts[2]) stages.add(parts[2]);
        if (stages.has(image) && image !== parts[2]) break; // FROM an earlier stage
        const name = image.split('@')[0];
        const tag = name.includes(':') ? name.slice(name.lastIndexOf(':') + 1) : '';
        if (!tag && !image.includes('@sha256:')) report(i, 'DL3006', `base image "${image}" has no tag`);
        if (tag === 'latest') report(i, 'DL3007', `base image "${image}" uses latest`);
        if (tag && !/\d/.test(tag)) report(i, 'DL3006', `base image tag "${tag}" pins no version`);
        break;
      }
      case 'RUN': {
        const cmds = i.args.split(/&&|;|\|\|/).map((c) => c.trim());
        const installs = cmds.filter((c) => /^apt-get\s.*\binstall\b/.test(c));
        for (const c of installs) {
          if (!/--no-install-recommends/.test(c)) report(i, 'DL3015', 'apt-get install without --no-install-recommends');
          if (!/\s-y\b|--yes|--assume-yes/.test(c)) report(i, 'DL3014', 'apt-get install without -y');
        }
        if (installs.length && !cmds.some((c) => /^apt-get\s+update\b/.test(c))) report(i, 'DL3009', 'apt-get install without apt-get update in the same layer');
        if (cmds.some((c) => /^apt-get\s+update\b/.test(c)) && !/rm -rf \/var\/lib\/apt\/lists/.test(i.args)) report(i, 'DL3009', 'apt lists not removed in the layer that fetched them');
        if (cmds.some((c) => /^apt\s/.test(c))) report(i, 'DL3027', 'use apt-get, not apt, in scripts');
        if (cmds.some((c) => /^npm\s+(install|i)\b/.test(c))) report(i, 'RT001', 'npm install: use npm ci for the lockfile\'s exact tree');
        for (const c of cmds.filter((x) => /^npm\s+ci\b/.test(x))) if (!/--omit=dev/.test(c)) report(i, 'RT002', 'npm ci without --omit=dev ships dev dependencies');
        if (cmds.some((c) => /^(sudo)\b/.test(c))) report(i, 'DL3004', 'do not use sudo');
        if (/\bcurl\b.*\|\s*(ba)?sh/.test(i.args)) report(i, 'RT003', 'piping a download into a shell');
        break;
      }
      case 'ADD':
        if (!/https?:\/\//.test(i.args) && !/\.tar/.test(i.args)) report(i, 'DL3020', 'use COPY for files and folders');
        break;
      case 'WORKDIR':
        if (!resolveArgs(i.args.trim(), args).startsWith('/')) report(i, 'DL3000', 'WORKDIR must be absolute');
        break;
      case 'CMD':
      case 'ENTRYPOINT':
        if (!i.args.trim().startsWith('[')) report(i, 'DL3025', `${i.keyword} in shell form: signals would go to /bin/sh, not node`);
        break;
      case 'MAINTAINER':
        report(i, 'DL4000', 'MAINTAINER is deprecated');
        break;
    }
  });

  // The final stage must not run as root: the roles that can, say so in their pod spec.
  const final = ins.slice(Math.max(lastFrom, 0));
  const users = final.filter((i) => i.keyword === 'USER');
  const user = users.at(-1)?.args.trim().split(':')[0];
  if (!user) problems.push('DL3002: the final stage sets no USER (it would run as root)');
  else if (user === 'root' || user === '0') problems.push(`DL3002: the final stage runs as ${user}`);

  const entry = ins.filter((i) => i.keyword === 'ENTRYPOINT' || i.keyword === 'CMD');
  if (entry.length === 0) problems.push('RT004: no ENTRYPOINT or CMD');
  const health = ins.find((i) => i.keyword === 'HEALTHCHECK');
  const documented = ins.some((i) => i.comments.some((c) => /no HEALTHCHECK/i.test(c)));
  if (!health && !documented) problems.push('RT005: no HEALTHCHECK and no comment saying why not');
  if (health && /^NONE\b/.test(health.args) === false && !/CMD/.test(health.args)) problems.push(`line ${health.line} RT005: HEALTHCHECK without CMD`);
  return problems;
}
