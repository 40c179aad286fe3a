<?php
// SPDX-License-Identifier: MIT
// leak.php - leaks LEAK_KB (a FastCGI parameter or the environment,
// default 512) KiB per request in the PHP-FPM child that serves it, for
// recycle_scope = children (tests/integration/test_children.py). PHP frees
// a request's memory when it ends, so the leak is a persistent FFI buffer
// (ffi.enable = true in the pool), written so that it is resident.
$kb = (int)($_SERVER['LEAK_KB'] ?? getenv('LEAK_KB') ?: 512);
$n = $kb * 1024;
$buf = FFI::new("char[$n]", false, true);
FFI::memset($buf, 120, $n);
header('Content-Type: text/plain');
echo 'pid ', getmypid(), "\n";
