"""One package per design; each registers its Scenario with simulator.scenario.register."""
