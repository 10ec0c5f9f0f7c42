import os

from metaflow import FlowSpec, step


class BranchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.v = "a"
        self.next(self.join)

    @step
    def b(self):
        if os.environ.get("BRANCH_FLOW_FAIL") == "1":
            raise RuntimeError("failing on purpose, to test resume")
        self.v = "b"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.vs = sorted(i.v for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BranchFlow()
