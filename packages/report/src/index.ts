/*
 * NAME
 *   @sluice/report - signed transit reports: format, canonical bytes, hybrid signatures, keys, verification
 *
 * SYNOPSIS
 *   import * as report from '@sluice/report';
 *
 *   Format (report.ts)       REPORT_FORMAT, REPORT_FORMATS, LOGGED_REPORT_FORMAT, assembleLogged, ReportLog, MAX_REPORT_BYTES, LIMITS, PICKUP_CHECK,
 *                            ReportBody, SignedReport, ReportCheck, ReportSignature, ReportFormat, Verdict,
 *                            CheckResult, validateReportBody, canonicalBytes, signReport, serializeReport, serializeLogged,
 *                            parseReport, neverCopied, pickupRefusal
 *   Canonical JSON (jcs.ts)  jcs, asciiJson
 *   Keys (keys.ts)           generateKeys, writeKeyFiles, loadSecretKey, loadPublicKey, parsePublicKey,
 *                            encodePublicKey, keyId, keyIdOfSecret, SecretKey, PublicKey, KeyPair, WrittenKeyFiles,
 *                            SECRET_KEY_FORMAT, PUBLIC_KEY_FORMAT, DEFAULT_KEY_NAME
 *   Signing off-thread       SignerPool, SignerPoolOptions
 *   Verification (verify.ts) verifyReport, verifyResultJson, VerifyOptions, VerifyResult, VerifyCode,
 *                            FileFacts, EXIT_CODES, EXIT_USAGE, EXIT_INTERNAL
 *   Merkle tree (merkle.ts)  MerkleTree, Frontier, leafHash, nodeHash, EMPTY_TREE_HASH, MERKLE_HASH_BYTES,
 *                            inclusionRanges, consistencyRanges, subtreeHashes, inclusionProofs,
 *                            verifyInclusion, verifyConsistency (RFC 9162 §2.1), Range
 *   Tree heads (treehead.ts) TREE_HEAD_FORMAT, treeHeadBytes, validateTreeHead, checkedTreeHead, isCheckedTreeHead,
 *                            parseTreeHead, serializeTreeHead,
 *                            signTreeHead, verifyTreeHead, rootBytes, TreeHeadBody, SignedTreeHead
 *   Log files (logfile.ts)   LOG_FILES, readLeaves, readHeads, lastHead, auditLog, proveConsistency,
 *                            encodeLeafRecord, checkLeaf, Scan, HeadLine, LastHead, LogAudit, ConsistencyProof
 *   Files                    hashFile
 *   Errors                   ReportFormatError, KeyFileError
 *
 * DESCRIPTION
 *   Egress signs one report per outcome (design invariant 7); `sluice verify`
 *   checks it. Trust position: this package reads hostile report texts (a
 *   consumer cannot know who edited a file) and never throws on them; it
 *   reads key files it was pointed at and refuses loose ones; it holds the
 *   secret key only inside SecretKey and the signer workers.
 *
 *   Only this package imports @noble/post-quantum and pqclean, and only
 *   _hybrid.ts calls them; pqclean is loaded on the first signature (or by
 *   the signer workers at startup), so a verify-only user never loads it.
 *   The byte-for-byte format, key files, exit codes and a test vector are in
 *   docs/report-format.md.
 */
export {
  REPORT_FORMAT,
  REPORT_FORMATS,
  LOGGED_REPORT_FORMAT,
  assembleLogged,
  type ReportLog,
  MAX_REPORT_BYTES,
  LIMITS,
  PICKUP_CHECK,
  validateReportBody,
  canonicalBytes,
  signReport,
  serializeReport,
  serializeLogged,
  parseReport,
  neverCopied,
  pickupRefusal,
  type ReportBody,
  type ReportFormat,
  type SignedReport,
  type ReportCheck,
  type ReportSignature,
  type Verdict,
  type CheckResult,
} from './report.js';
export { jcs, asciiJson } from './jcs.js';
export {
  generateKeys,
  writeKeyFiles,
  loadSecretKey,
  loadPublicKey,
  parsePublicKey,
  encodePublicKey,
  keyId,
  keyIdOfSecret,
  SecretKey,
  SECRET_KEY_FORMAT,
  PUBLIC_KEY_FORMAT,
  DEFAULT_KEY_NAME,
  type PublicKey,
  type KeyPair,
  type WrittenKeyFiles,
} from './keys.js';
export { SignerPool, type SignerPoolOptions } from './signer-pool.js';
export {
  verifyReport,
  verifyResultJson,
  EXIT_CODES,
  EXIT_USAGE,
  EXIT_INTERNAL,
  type VerifyOptions,
  type VerifyResult,
  type VerifyCode,
  type FileFacts,
} from './verify.js';
export { hashFile } from './hash-file.js';
export {
  MerkleTree,
  Frontier,
  inclusionRanges,
  consistencyRanges,
  subtreeHashes,
  inclusionProofs,
  type Range,
  leafHash,
  nodeHash,
  EMPTY_TREE_HASH,
  MERKLE_HASH_BYTES,
  verifyInclusion,
  verifyConsistency,
} from './merkle.js';
export {
  TREE_HEAD_FORMAT,
  MAX_TREE_HEAD_BYTES,
  treeHeadBytes,
  validateTreeHead,
  checkedTreeHead,
  isCheckedTreeHead,
  parseTreeHead,
  serializeTreeHead,
  signTreeHead,
  verifyTreeHead,
  rootBytes,
  type TreeHeadBody,
  type SignedTreeHead,
} from './treehead.js';
export {
  LOG_FILES,
  MAX_LEAF_BYTES,
  LEAF_HEADER_BYTES,
  readLeaves,
  readHeads,
  lastHead,
  auditLog,
  proveConsistency,
  encodeLeafRecord,
  checkLeaf,
  type Scan,
  type HeadLine,
  type LastHead,
  type LogAudit,
  type ConsistencyProof,
} from './logfile.js';
export { ReportFormatError, KeyFileError } from './errors.js';
