/** Tensors a stage of the erase job creates, disposed together unless kept. */
import type { Tensor } from '../tensor';

export class Scope {
  readonly #items: Tensor[] = [];
  add(t: Tensor): Tensor {
    this.#items.push(t);
    return t;
  }
  keep(t: Tensor): Tensor {
    const i = this.#items.indexOf(t);
    if (i >= 0) this.#items.splice(i, 1);
    return t;
  }
  dispose(): void {
    for (const t of this.#items.splice(0)) t.dispose();
  }
}
