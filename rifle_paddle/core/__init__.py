"""What every layer shares and no layer owns: the training-step protocol, the fp32 view of half-precision weights,
durable file writes and time-left estimates. It imports nothing else of the package, so the methods
(``callbacks``, ``regularizers``, ``tricks``) can build on it without depending on the engine that runs them."""
