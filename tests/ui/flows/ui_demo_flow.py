import sys

from metaflow import FlowSpec, Parameter, card, current, retry, step


class UiDemoFlow(FlowSpec):
    """A foreach, a card, and a step whose first attempt fails (retried once)."""

    n = Parameter("n", default=3, type=int)

    @card
    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.sq = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.sq for i in inputs)
        self.next(self.flaky)

    @retry(times=1, minutes_between_retries=0)
    @step
    def flaky(self):
        print(f"flaky attempt {current.retry_count} says hello on stdout")
        print(f"flaky attempt {current.retry_count} complains on stderr", file=sys.stderr)
        if current.retry_count == 0:
            raise RuntimeError("attempt 0 fails on purpose")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    UiDemoFlow()
