import type { Command } from '../command.ts';
import { benchCommand } from './bench.ts';
import { gpuInfoCommand } from './gpu-info.ts';

export const commands: Command[] = [gpuInfoCommand, benchCommand];
