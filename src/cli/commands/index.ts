import type { Command } from '../command.ts';
import { benchCommand } from './bench.ts';
import { cacheCommand } from './cache.ts';
import { checkCommand } from './check.ts';
import { exportCommand } from './export.ts';
import { generateCommand } from './generate.ts';
import { remoteCommand } from './remote.ts';
import { planCommand } from './plan.ts';
import { trainCommand } from './train.ts';
import { gpuInfoCommand } from './gpu-info.ts';
import { tokenizeCommand } from './tokenize.ts';
import { validateCommand } from './validate.ts';

export const commands: Command[] = [gpuInfoCommand, benchCommand, validateCommand, tokenizeCommand, checkCommand, trainCommand, generateCommand, exportCommand, planCommand, remoteCommand, cacheCommand];
