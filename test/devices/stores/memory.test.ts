import t from 'tap';
import { MemoryStore } from '../../../src/devices/stores/memory.js';
import { storeContract } from '../store.contract.js';

// No reopen: nothing outlives the process (DATA_DIR empty), so the restart cases are skipped.
storeContract(t, 'memory', async (_t, options) => new MemoryStore(options));
