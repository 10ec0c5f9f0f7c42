from metaflow import FlowSpec, current, step


class RetryFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.flaky)

    @step
    def flaky(self):
        self.attempt_seen = current.retry_count
        if current.retry_count == 0:
            raise RuntimeError("attempt 0 fails on purpose")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RetryFlow()
