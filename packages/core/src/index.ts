/*
 * NAME
 *   @sluice/core - what every stage shares
 *
 * DESCRIPTION
 *   copy      checking a received descriptor and taking the private copy
 *   direct    copies into files a stage opened with O_DIRECT
 *   _unlinked the nameless 0600 file a copy goes to when memory cannot hold it
 *   fds       counting this process's descriptors (leak checks)
 *   receive   the table of what each hop accepts; the one receive path
 *   channel   SEQPACKET listeners and connectors, peer checks, ack matching
 *   verdict   decide(): the one accept/reject rule, and the report's reason
 *   slots     a counting bound with a FIFO queue
 *   config    the configuration file, its schema and errors
 *   daemon    the skeleton of a stage: signals, readiness, one fatal path
 *   durable   crash-safe filesystem steps
 *   names     uploaded names made safe: stored names, log escaping
 *   log       the structured logger
 *   metrics   counters, gauges, histograms; the Prometheus text format
 *   status    what a stage publishes: its status file and metrics file
 *   errors    Refused (bad input) versus everything else
 */
export * from './copy.js';
export * from './direct.js';
export * from './fds.js';
export { COPY_CHUNK, DIRECT_ALIGN } from './_copy-buffers.js';
export { openUnlinked } from './_unlinked.js';
export * from './receive.js';
export * from './verdict.js';
export * from './slots.js';
export * from './channel.js';
export * from './config.js';
export * from './daemon.js';
export * from './durable.js';
export * from './names.js';
export * from './log.js';
export * from './metrics.js';
export * from './status.js';
export * from './errors.js';
