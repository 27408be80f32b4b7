/**
 * MobileFaceNet (TreB1eN's InsightFace_Pytorch) on the CPU in float32: temporary scaffolding for
 * the parity tests and the ONNX converter's check, until the identity-encoder API replaces it.
 */
import { invalidArgument } from './errors';
import { callNative, runJob, type JobOptions } from './jobs';
import { loadAddon, type NativeMobileFaceNet } from './native';
import { Tensor } from './tensor';

export class MobileFaceNet {
  readonly #native: NativeMobileFaceNet;

  /** width scales every channel count (1 = the official network); embeddingSize is 512 officially. */
  constructor(width = 1, embeddingSize = 512) {
    this.#native = callNative(() => loadAddon().mobileFaceNet(width, embeddingSize));
  }

  /** The weights and batch-norm buffers under the official state_dict names (sharing memory). */
  stateDict(): Map<string, Tensor> {
    return new Map(callNative(() => this.#native.stateDict()).map(([k, h]) => [k, new Tensor(h)]));
  }

  /** Copy weights in by name; strict (default) requires exactly the model's names and shapes. */
  async loadStateDict(entries: Map<string, Tensor>, opts?: JobOptions & { strict?: boolean }): Promise<void> {
    if (!(entries instanceof Map)) throw invalidArgument('entries must be a Map<string, Tensor>');
    const list = Array.from(entries, ([k, t]): [string, Tensor['handle']] => {
      if (!(t instanceof Tensor)) throw invalidArgument(`entries['${k}'] must be a Tensor`);
      return [k, t.handle];
    });
    await runJob(opts, (n) => this.#native.loadStateDict(list, opts?.strict ?? true, n));
  }

  /** x: [B, 3, 112, 112] in the weights' input protocol → the raw embedding [B, E] (not L2-normalised). */
  async forward(x: Tensor, opts?: JobOptions): Promise<Tensor> {
    if (!(x instanceof Tensor)) throw invalidArgument('x must be a Tensor');
    const h = x.handle;
    return new Tensor(await runJob(opts, (n) => this.#native.forward(h, n)));
  }
}
