"""Long-running jobs: the job-kind registry, the in-process engine and the Redis (RQ) engine."""
