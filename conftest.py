pytest_plugins = ["cdp.testing"]
