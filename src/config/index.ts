// The one hyperparameter schema: Replicate's training inputs + our extras, for the CLI, the page and remote mode.
export {
  FIELDS,
  FIELD_BY_NAME,
  HYPERPARAM_NAMES,
  TARGET_PRESETS,
  defaultHyperparams,
  defaultQuantization,
  describeRule,
  hyperparamWarnings,
  hyperparamsSchema,
  nonDefault,
  parseHyperparams,
  parseTargetModules,
  safeParseHyperparams,
  targetModules,
  unknownNameMessage,
  type FieldMeta,
  type Group,
  type HyperparamName,
  type Hyperparams,
  type LrScheduler,
  type ParseResult,
  type PeftMethod,
} from './hyperparams.ts';
export { hyperparamUsage, hyperparamsFromArgs, splitHyperparamFlags, type SplitArgs } from './flags.ts';
export { REPLICATE_INPUT_NAMES, toReplicateInput, type ReplicateConversion, type ReplicateTrainingInput } from './replicate.ts';
export { GENERATION_LIMITS, generationLimitMessage, parseGenerationSetting, withinGenerationLimit, type GenerationLimit, type GenerationSetting, type ParsedSetting } from './generation.ts';
