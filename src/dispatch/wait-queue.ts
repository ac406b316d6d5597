// A FIFO with O(1) push, shift and removal from the middle (a waiter whose client left, or whose
// max wait ran out, leaves from wherever it stands).

export interface QueueNode<T> {
  readonly value: T;
  prev: QueueNode<T> | undefined;
  next: QueueNode<T> | undefined;
  linked: boolean;
}

export class WaitQueue<T> {
  private head: QueueNode<T> | undefined;
  private tail: QueueNode<T> | undefined;
  private count = 0;

  get size(): number {
    return this.count;
  }

  push(value: T): QueueNode<T> {
    const node: QueueNode<T> = { value, prev: this.tail, next: undefined, linked: true };
    if (this.tail) this.tail.next = node;
    else this.head = node;
    this.tail = node;
    this.count++;
    return node;
  }

  remove(node: QueueNode<T>): boolean {
    if (!node.linked) return false;
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.tail = node.prev;
    node.prev = node.next = undefined;
    node.linked = false;
    this.count--;
    return true;
  }

  /** Oldest first. Removing the node being visited is safe. */
  *nodes(): IterableIterator<QueueNode<T>> {
    let n = this.head;
    while (n) {
      const next = n.next;
      yield n;
      n = next;
    }
  }

  first(): QueueNode<T> | undefined {
    return this.head;
  }
}
