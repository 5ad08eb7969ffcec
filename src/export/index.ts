// Adapter export: PEFT directory / zip (vLLM, PEFT, Ollama) and GGUF LoRA (llama.cpp, Ollama).
export { adapterBundle, adapterZip, GGUF_FILE, withBaseModel, type BundleOptions, type ZipOptions } from './bundle.ts';
export { adapterReadme, peftFiles, peftZip, README_FILE, ZIP_MTIME, type PeftExportOptions, type PeftZipOptions, type ReadmeOptions } from './peft.ts';
export {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_MAX_DIMS,
  GGUF_MAX_NAME_BYTES,
  GGUF_VERSION,
  GgmlType,
  GgufType,
  ggmlTypeName,
  ggufHeaderString,
  kvArray,
  kvBool,
  kvF32,
  kvI32,
  kvString,
  kvU32,
  kvU64,
  writeGguf,
  type GgufArray,
  type GgufData,
  type GgufKv,
  type GgufTensorToWrite,
} from './gguf-format.ts';
export { codeSpan, fencedBlock, importedTrainingCard, MAX_RESULT_ROWS, remoteTrainingCardLines, trainingCardLines, trainingCardSection, trainingSectionOf, type TrainingCard, type TrainingSummary } from './training-card.ts';
export { GGUF_LORA_TENSOR, ggufLoraAlpha, ggufLoraName, loraToGguf, permuteQkRows, type LoraToGgufOptions } from './gguf-lora.ts';
