"""The benchmark flow: start -> foreach over `width` items -> join -> end (width + 3 tasks)."""

from metaflow import FlowSpec, Parameter, step


class BenchForeachFlow(FlowSpec):
    width = Parameter("width", default=100, type=int)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.fanout, foreach="items")

    @step
    def fanout(self):
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("total", self.total)


if __name__ == "__main__":
    BenchForeachFlow()
