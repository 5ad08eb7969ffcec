// The data pipeline: JSONL bytes → validated rows → token ids in a layout → packed, batched training data.
export { chunksOf, readJsonl, firstInvalidUtf8, DEFAULT_MAX_LINE_BYTES, type ByteSource, type JsonlLine, type ReadCounters, type ReadOptions } from './jsonl.ts';
export { findJsonSyntaxError, columnOf, type JsonSyntaxError } from './json-syntax.ts';
export { ProblemLog, formatProblem, type Problem, type ProblemCode, type Severity } from './problems.ts';
export { RowChecker, describeShape, type DataRow, type RowShape } from './rows.ts';
export { loadTokenizer, type Tokenizer } from './tokenizer.ts';
export { renderChatTemplate, chatTemplateOf, rowToMessages, type ChatMessage, type TokenizerConfig } from './chat-template.ts';
export { LAYOUTS, IGNORE_INDEX, layoutIds, encodeRow, exampleLabels, lossTokensIn, type Example, type Layout } from './layout.ts';
export { loadDataset, type DatasetSummary, type LoadedDataset, type LoadOptions, type TokenStats } from './dataset.ts';
export { packSequences, sequenceLength, type PackOptions, type Segment, type Sequence } from './pack.ts';
export {
  TrainingData,
  buildMicroBatch,
  gradientAccumulationSteps,
  prepareTrainingData,
  splitExamples,
  type BatchBuildOptions,
  type DataPlanOptions,
  type DataStats,
  type MicroBatch,
  type TrainStep,
} from './batches.ts';
export { loadRunData, type RunData, type RunDataOptions } from './training-data.ts';
export { createRng, epochPermutation, shuffleInPlace, type Rng } from '../core/prng.ts';
