from metaflow import FlowSpec, step


class NestedForeachFlow(FlowSpec):
    @step
    def start(self):
        self.outer = ["a", "b"]
        self.next(self.outer_step, foreach="outer")

    @step
    def outer_step(self):
        self.o = self.input
        self.inner = [1, 2]
        self.next(self.inner_step, foreach="inner")

    @step
    def inner_step(self):
        self.label = f"{self.o}{self.input}"
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.labels = sorted(i.label for i in inputs)
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.all = sorted(l for i in inputs for l in i.labels)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    NestedForeachFlow()
