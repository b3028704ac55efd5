"""Load models: when conversations start. The closed model is Locust's own crowd of users; the open model
(:mod:`loadgen.load.arrivals`) starts conversations at a rate, whatever the service does."""
