/*
 * NAME
 *   file-type - the content type allowlist check
 *
 * SYNOPSIS
 *   import { fileTypeCheck } from './file-type.js';
 *
 *   fileTypeCheck({ allow: ['png', 'jpg', 'pdf', 'txt'], timeoutMs? }): Check
 *   typeDecision(info, name, allowed): { ok, reason }     the same rule, on any content
 *
 * DESCRIPTION
 *   Detects what the file is by its bytes (content.ts: file-type magic
 *   numbers on a 64 KiB prefix, and a whole-file clean-text scan) and passes
 *   when any id of the content is in the allowlist. Ids are the ones
 *   detection produces: file-type's extensions ('png', 'jpg' - not 'jpeg' -,
 *   'pdf', 'zip', 'docx', 'elf', 'exe', ...) and 'txt', 'csv', 'json',
 *   'empty', 'unknown'. A broader id admits its refinements: 'txt' admits
 *   csv and json and any clean text that is not a script or markup (below); 'csv' or 'json' alone admit only that
 *   sub-kind. 'empty' alone admits only empty files ('txt' admits them too).
 *   'unknown' admits any content that is neither a known format nor text;
 *   it is accepted in the list but means "no type policy" for binaries.
 *
 *   Scripts and markup (active.ts: shell, batch, powershell, vbscript,
 *   javascript, wsh, hta, desktop, python, perl, ruby, php, html, svg, xml,
 *   ps, eps, reg) are types an operator allows by name. A file is of such a
 *   type when its content shows it (detectContent's `active`) or when the
 *   extension of its stored name is one of the type's; 'txt' admits neither.
 *   The check fails unless EVERY such type of the file is in the allowlist,
 *   and then also needs, as before, one of its ids (or its name's type)
 *   in the allowlist.
 *
 *   Reasons: "content type elf is not allowed", "content type unknown
 *   (binary, not text: NUL byte at byte 5242879) is not allowed",
 *   "script or markup not allowed: shell (content: #! line \"#!/bin/sh\";
 *   extension .sh)".
 *
 * DIAGNOSTICS
 *   The factory throws TypeError for an empty allowlist or an id detection
 *   can never produce (a typo like 'jpeg' would otherwise reject every JPEG
 *   silently), naming the id.
 */

import type { Check, CheckInput, CheckRun } from './check.js';
import { CONTENT_ENGINE, KNOWN_CONTENT_IDS, detectContent, type ContentInfo } from './content.js';
import { activeTypeOfExtension } from './active.js';
import { nameExtension } from './extension.js';

export interface FileTypeConfig {
  /** Allowed content ids. */
  allow: readonly string[];
  /** Default 120,000 ms (the text scan reads the whole file). */
  timeoutMs?: number;
}

const HINTS: Readonly<Record<string, string>> = {
  jpeg: 'jpg', tiff: 'tif', text: 'txt', htm: 'html', mpeg: 'mpg',
  sh: 'shell', bash: 'shell', bat: 'batch', cmd: 'batch', ps1: 'powershell', vbs: 'vbscript', js: 'javascript', py: 'python',
};

/** activeOf - every script or markup type of the file, by content and by its name's extension, with how each was found. */
function activeOf(contentActive: readonly { type: string; how: string }[], ext: string): Map<string, string[]> {
  const types = new Map<string, string[]>();
  for (const f of contentActive) types.set(f.type, [...(types.get(f.type) ?? []), f.how]);
  const byName = activeTypeOfExtension(ext);
  if (byName !== undefined) types.set(byName, [...(types.get(byName) ?? []), `extension .${ext}`]);
  return types;
}

/**
 * typeDecision - whether content detected as `info`, stored under `name`,
 * is allowed by the list: the rule of fileTypeCheck, also applied by the
 * archive inspector to every member.
 */
export function typeDecision(info: ContentInfo, name: string, allowed: ReadonlySet<string>): { ok: boolean; reason: string } {
  const active = activeOf(info.active, nameExtension(name));
  const refused = [...active].filter(([type]) => !allowed.has(type));
  if (refused.length > 0) {
    const listed = refused.map(([type, how]) => `${type} (${how.join('; ')})`).join(', ');
    return { ok: false, reason: `script or markup not allowed: ${listed}` };
  }
  const match = [...info.ids, ...active.keys()].find((id) => allowed.has(id));
  if (match === undefined) {
    const shown = info.type === 'unknown' ? `unknown (${info.detail})` : info.type;
    return { ok: false, reason: `content type ${shown} is not allowed` };
  }
  const as = match === info.type ? '' : ` as ${match}`;
  const byName = active.size === 0 ? '' : `; allowed by name: ${[...active.keys()].join(', ')}`;
  return { ok: true, reason: `content type ${info.type} is allowed${as} (${info.detail})${byName}` };
}

/** fileTypeCheck - a check that passes only content whose type is allowed. */
export function fileTypeCheck(config: FileTypeConfig): Check {
  const { allow, timeoutMs = 120_000 } = config;
  if (!Array.isArray(allow) || allow.length === 0) {
    throw new TypeError('fileTypeCheck: allow must list at least one content type');
  }
  for (const id of allow) {
    if (typeof id !== 'string' || !KNOWN_CONTENT_IDS.has(id)) {
      const hint = typeof id === 'string' && HINTS[id] ? ` (did you mean '${HINTS[id]}'?)` : '';
      throw new TypeError(`fileTypeCheck: unknown content type ${JSON.stringify(id)}${hint}`);
    }
  }
  const allowed = new Set(allow);
  return {
    name: 'file-type',
    timeoutMs,
    engine: CONTENT_ENGINE,
    async run(input: CheckInput, signal: AbortSignal): Promise<CheckRun> {
      const info = await detectContent(input, signal);
      const d = typeDecision(info, input.name, allowed);
      return { outcome: d.ok ? 'pass' : 'fail', reason: d.reason, engine: CONTENT_ENGINE };
    },
  };
}
