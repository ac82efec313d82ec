/*
 * NAME
 *   checks - transit's check interface and content checks
 *
 * SYNOPSIS
 *   import { runChecks, CheckUnavailable,
 *            sizeLimitCheck, fileTypeCheck, extensionMatchCheck,
 *            clamavCheck, yaraCheck, detectContent } from './checks/index.js';
 *
 * DESCRIPTION
 *   check.ts      the Check interface and runChecks() (the verdict: core's decide())
 *   size.ts       sizeLimitCheck({ maxBytes })
 *   file-type.ts  fileTypeCheck({ allow })
 *   extension.ts  extensionMatchCheck()
 *   content.ts    detectContent(): what a file is, read once per input
 *   text.ts       streaming clean-text, JSON and CSV scanners
 *   active.ts     scripts and markup: types allowed only by name
 *   archive/      archiveCheck(): members of zip, tar, tar.gz, gz held to the same rules
 *   read.ts       bounded positional reads
 *   clamav.ts     clamavCheck(): clamd over FILDES (local) or INSTREAM (TCP)
 *   yara.ts       yaraCheck(): rules compiled at start, Debian's yara per scan
 *   slots.ts      Slots: core's bound on concurrent scans, busy = CheckUnavailable
 *   The rules are in docs/checks.md.
 */

export {
  CheckUnavailable,
  MAX_REASON_CHARS,
  runChecks,
  type Check,
  type CheckInput,
  type CheckOutcome,
  type CheckResult,
  type CheckRun,
  type ChecksOutcome,
} from './check.js';
export { CONTENT_ENGINE, KNOWN_CONTENT_IDS, detectContent, type ContentInfo } from './content.js';
export { ACTIVE_IDS, ACTIVE_TYPES, activeTypeOfExtension, type ActiveFinding, type ActiveType } from './active.js';
export { SIZE_ENGINE, sizeLimitCheck, type SizeLimitConfig } from './size.js';
export { fileTypeCheck, type FileTypeConfig } from './file-type.js';
export { acceptedContentFor, extensionMatchCheck, nameExtension, type ExtensionMatchConfig } from './extension.js';
export {
  clamavCheck,
  interpretScanReply,
  interpretVersionReply,
  type ClamavCheck,
  type ClamavConfig,
  type ScanReply,
  type ScannerLog,
} from './clamav.js';
export { parseYaraOutput, yaraCheck, YaraSetupError, type YaraCheck, type YaraConfig, type YaraOutput } from './yara.js';
export { Slots } from './slots.js';
export { ARCHIVE_ENGINE, archiveCheck, inspectArchive, type ArchiveCheckConfig, type ArchiveVerdict } from './archive/check.js';
export type { ArchiveLimits } from './archive/limits.js';
