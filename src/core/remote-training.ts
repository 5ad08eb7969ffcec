// What is known of an adapter trained by a remote trainer (Replicate), for its README: the floors that build it
// (src/remote, from the training object) and write it (src/export) meet here, neither importing the other.

export interface RemoteTrainingSummary {
  /** The training's id on Replicate. */
  id: string;
  /** The trainer's model (`owner/name`) and version id, when the training object names them. */
  trainer: string | null;
  version: string | null;
  /** When it finished (ISO 8601) and how long it ran (Replicate's predict_time), when known. */
  completedAt: string | null;
  seconds: number | null;
  /**
   * Its inputs in the trainer's names: the hyperparameters as sent (an input not sent is at its default, and listed
   * so), the data files left out (they went as URLs, which can carry a signature).
   */
  inputs: readonly { name: string; value: string | number | boolean; isDefault: boolean }[];
}
