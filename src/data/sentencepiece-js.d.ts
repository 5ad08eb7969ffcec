// Types for the parts of @agnai/sentencepiece-js (SentencePiece compiled to WASM with embind) that src/data/tokenizer.ts
// uses. The package ships no declarations. `sentencepiece` is the emscripten module instance that `load()` creates.
declare module '@agnai/sentencepiece-js' {
  export interface EmbindObject {
    delete(): void;
  }
  export interface SpStatus extends EmbindObject {
    ToString(): string;
  }
  export interface SpVectorInt extends EmbindObject {
    size(): number;
    get(i: number): number;
  }
  export interface SpStringView extends EmbindObject {
    getView(): EmbindObject;
  }
  export interface SpProcessor extends EmbindObject {
    Load(path: EmbindObject): SpStatus;
    EncodeAsIds(text: EmbindObject): SpVectorInt;
    DecodeIds(ids: SpVectorInt): string;
  }
  export interface SpModule {
    FS: { writeFile(path: string, data: Uint8Array): void; unlink(path: string): void };
    StringView: new (text: string) => SpStringView;
    SentencePieceProcessor: new () => SpProcessor;
    vecFromJSArray(ids: number[]): SpVectorInt;
    /** The module's whole memory (emscripten replaces the view when the memory grows). */
    HEAPU8: Uint8Array;
  }
  export class SentencePieceProcessor {
    sentencepiece?: SpModule;
    load(path: string): Promise<void>;
  }
  const index: { SentencePieceProcessor: typeof SentencePieceProcessor };
  export default index;
}
