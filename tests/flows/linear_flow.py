import time

from metaflow import FlowSpec, Parameter, step


class LinearFlow(FlowSpec):
    sleep = Parameter("sleep", default=0, type=int, help="seconds the start step sleeps")

    @step
    def start(self):
        self.x = 1
        time.sleep(self.sleep)
        self.next(self.end)

    @step
    def end(self):
        self.y = self.x + 1


if __name__ == "__main__":
    LinearFlow()
