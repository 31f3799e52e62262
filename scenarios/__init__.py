"""One package per design; each registers its Scenario with simulator.pipeline.scenario.register."""
