"""A foreach whose tasks sleep a little, so that a run lasts long enough for faults to be
injected while tasks are being created and finished (tests/reliability/test_faults.py)."""

import time

from metaflow import FlowSpec, Parameter, step


class SlowForeachFlow(FlowSpec):
    n = Parameter("n", default=20, type=int)
    sleep = Parameter("sleep", default=1.0, type=float)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.each, foreach="items")

    @step
    def each(self):
        time.sleep(self.sleep)
        self.sq = self.input * self.input
        self.label = "item-%d" % self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.labels = sorted(i.label for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SlowForeachFlow()
