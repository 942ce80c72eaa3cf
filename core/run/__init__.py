"""Running recipes: cache keys (keys), the variant-tree walk and run lifecycle (runner), the worker
process (worker), and the client side of one worker run (session; process for a subprocess)."""
