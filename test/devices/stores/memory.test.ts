import t from 'tap';
import { MemoryStore } from '../../../src/devices/stores/memory.js';
import { storeContract } from '../store.contract.js';

storeContract(t, 'memory', async (_t, options) => new MemoryStore(options));
