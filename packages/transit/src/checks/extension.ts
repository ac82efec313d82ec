/*
 * NAME
 *   extension - does the uploaded name's extension agree with the content?
 *
 * SYNOPSIS
 *   import { extensionMatchCheck, nameExtension, acceptedContentFor } from './extension.js';
 *
 *   extensionMatchCheck({ timeoutMs? } = {}): Check
 *   nameExtension(name: string): string          lowercase, '' when none
 *   acceptedContentFor(ext: string): readonly string[]
 *   extensionDecision(info, name): { ok, reason }   the rule, on any content
 *
 * DESCRIPTION
 *   Catches disguise: 'photo.png' that is a PDF, 'notes.txt' that is an ELF,
 *   'invoice<RLO>fdp.exe'. It shares the detection of fileTypeCheck
 *   (content.ts; the file is read once) and passes when any id of the
 *   content is one the extension accepts (acceptedContentFor):
 *
 *     - an extension file-type knows ('png', 'pdf', 'zip', 'exe', ...)
 *       accepts that type, with these equivalences:
 *         jpg jpeg jpe jfif -> jpg          tif tiff -> tif
 *         mpg mpeg -> mpg                   mid midi -> mid
 *         gz tgz -> gz, tar.gz              heic heif -> heic
 *         ps eps -> ps, eps                 doc xls ppt msg msi -> cfb
 *         so o ko elf -> elf                dll sys efi scr exe -> exe
 *         dylib macho -> macho
 *         mp4 m4v m4a m4b m4p mov 3gp 3g2 f4v f4a f4b f4p: any of them
 *         ogg oga ogv ogx opus spx ogm: any of them
 *         a ZIP-based format (docx, xlsx, odt, epub, jar, apk, ...) also
 *         accepts plain 'zip': the 64 KiB prefix may not reach the entry
 *         that tells them apart;
 *     - textual formats (xml, svg, rtf, ps, eps, ics, vcf, vtt, reg, pgp,
 *       asc, stl) also accept 'txt': their signature is optional or varies;
 *     - 'json' accepts only json (its consumer will parse it);
 *     - 'bin' and 'dat' accept opaque data: 'unknown' or text;
 *     - every other extension ('txt', 'text', 'log', 'md', 'csv', 'tsv',
 *       'html', 'py', ...), and a name with no extension, accepts text
 *       (any content that counts as 'txt', which includes csv and json):
 *       clean text cannot hide a binary, a binary under a text or unknown
 *       name is exactly the disguise this check is for;
 *     - an empty file matches any name: zero bytes cannot disagree.
 *
 *   nameExtension() is the extension of the name egress will store, i.e. of
 *   core's sanitizeName(name) (docs/checks.md, "Names"): separators
 *   and controls replaced, invisible and bidi characters dropped, trailing
 *   dots and white space gone (Windows drops them: 'evil.exe.' is an .exe
 *   there), cut to 200 bytes keeping the extension, '.sluice.json' made
 *   '.sluice_json'. The extension is the part after the last dot, if it has
 *   no white space and at most 23 UTF-8 bytes; it is lowercased.

 */

import { supportedExtensions } from 'file-type';
import { sanitizeName, splitExtension } from '@sluice/core';
import type { Check, CheckInput, CheckRun } from './check.js';
import { CONTENT_ENGINE, detectContent, type ContentInfo } from './content.js';

export interface ExtensionMatchConfig {
  /** Default 120,000 ms (shares the whole-file text scan). */
  timeoutMs?: number;
}

const TEXT: readonly string[] = ['txt'];

const GROUPS: readonly (readonly string[])[] = [
  ['mp4', 'm4v', 'm4a', 'm4b', 'm4p', 'mov', '3gp', '3g2', 'f4v', 'f4a', 'f4b', 'f4p'],
  ['ogg', 'oga', 'ogv', 'ogx', 'opus', 'spx', 'ogm'],
];

const ZIP_BASED: readonly string[] = [
  'docx', 'xlsx', 'pptx', 'docm', 'xlsm', 'pptm', 'dotx', 'dotm', 'xltx', 'xltm', 'potx', 'potm', 'ppsx', 'ppsm',
  'vsdx', 'odt', 'ods', 'odp', 'odg', 'ott', 'ots', 'otp', 'otg', 'epub', 'jar', 'apk', 'xpi', '3mf',
];

const TEXTUAL: readonly string[] = ['xml', 'svg', 'rtf', 'ps', 'eps', 'ics', 'vcf', 'vtt', 'reg', 'pgp', 'asc', 'stl'];

const ALIASES: Readonly<Record<string, readonly string[]>> = {
  jpg: ['jpg'], jpeg: ['jpg'], jpe: ['jpg'], jfif: ['jpg'],
  tif: ['tif'], tiff: ['tif'],
  mpg: ['mpg'], mpeg: ['mpg'],
  mid: ['mid'], midi: ['mid'],
  gz: ['gz', 'tar.gz'], tgz: ['gz', 'tar.gz'],
  heic: ['heic'], heif: ['heic'],
  ps: ['ps', 'eps'], eps: ['eps', 'ps'],
  doc: ['cfb'], xls: ['cfb'], ppt: ['cfb'], msg: ['cfb'], msi: ['cfb'],
  so: ['elf'], o: ['elf'], ko: ['elf'], elf: ['elf'],
  dll: ['exe'], sys: ['exe'], efi: ['exe'], scr: ['exe'], exe: ['exe'],
  dylib: ['macho'], macho: ['macho'],
  svg: ['xml'], asc: ['pgp'],
  json: ['json'],
  bin: ['unknown', 'txt'], dat: ['unknown', 'txt', 'dat'],
};

/** acceptedContentFor - the content ids a (lowercase) name extension accepts. */
export function acceptedContentFor(ext: string): readonly string[] {
  if (ext === '') return TEXT;
  let accepted: readonly string[] | undefined = ALIASES[ext];
  if (accepted === undefined) {
    const group = GROUPS.find((g) => g.includes(ext));
    if (group) accepted = group;
    else if (ZIP_BASED.includes(ext)) accepted = [ext, 'zip'];
    else if (supportedExtensions.has(ext)) accepted = [ext];
    else return TEXT;
  }
  return TEXTUAL.includes(ext) ? [...accepted, 'txt'] : accepted;
}

/** nameExtension - the lowercase extension (without its dot) of the name as egress will store it, or ''. */
export function nameExtension(name: string): string {
  return splitExtension(sanitizeName(name)).ext.slice(1).toLowerCase();
}

/**
 * extensionDecision - whether the extension of `name` agrees with content
 * detected as `info`: the rule of extensionMatchCheck, also applied by the
 * archive inspector to every member.
 */
export function extensionDecision(info: ContentInfo, name: string): { ok: boolean; reason: string } {
  const ext = nameExtension(name);
  const shown = ext === '' ? 'no extension' : `extension .${ext}`;
  if (info.type === 'empty') return { ok: true, reason: `empty file; any name matches (${shown})` };
  const accepted = acceptedContentFor(ext);
  const match = info.ids.find((id) => accepted.includes(id));
  if (match === undefined) {
    return { ok: false, reason: `${shown} does not match content type ${info.type} (accepted: ${accepted.join(', ')})` };
  }
  return { ok: true, reason: `${shown} matches content type ${info.type}` };
}

/** extensionMatchCheck - a check that fails when the name's extension disagrees with the content. */
export function extensionMatchCheck(config: ExtensionMatchConfig = {}): Check {
  const { timeoutMs = 120_000 } = config;
  return {
    name: 'extension-match',
    timeoutMs,
    engine: CONTENT_ENGINE,
    async run(input: CheckInput, signal: AbortSignal): Promise<CheckRun> {
      const info = await detectContent(input, signal);
      const d = extensionDecision(info, input.name);
      return { outcome: d.ok ? 'pass' : 'fail', reason: d.reason, engine: CONTENT_ENGINE };
    },
  };
}
