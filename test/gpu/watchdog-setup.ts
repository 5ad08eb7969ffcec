// The gpu tier's setup file: every test process of the tier runs under the hang watchdog (test/helpers/hang-watchdog.ts).
import { startHangWatchdog } from '../helpers/hang-watchdog.ts';

startHangWatchdog();
