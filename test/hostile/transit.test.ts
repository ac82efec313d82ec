// A compromised ingress attacks transit: it connects to DIR/run/transit.sock
// of a `sluice dev` pipeline and sends IngressTransfer records with hostile
// descriptors, lies, garbage, floods and names. The cases and the four rules
// each is held to are in cases.ts and harness.ts; docs/threat-model.md maps
// them to the threats.
import { registerAttacks } from './cases.js';

registerAttacks('transit');
