// A compromised transit attacks egress: it connects to DIR/run/egress.sock of
// a `sluice dev` pipeline and sends TransitTransfer records (by default a
// forged "accepted" with passing checks) with hostile descriptors, lies,
// garbage, floods and names. Cases: cases.ts; rules: harness.ts; threats:
// docs/threat-model.md.
import { registerAttacks } from './cases.js';

registerAttacks('egress');
