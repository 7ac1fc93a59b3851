"""Game plugins: probes and consoles over RCON, A2S, Server List Ping, Palworld REST,
and plain TCP / HTTP."""
