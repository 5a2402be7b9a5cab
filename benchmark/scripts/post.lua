-- wrk script: POST a body of N bytes (the script's first argument, default 1024) to the URL's path.
--   wrk -s benchmark/scripts/post.lua http://127.0.0.1:3000/echo -- 65536
init = function(args)
  local size = tonumber(args[1]) or 1024
  local body = string.rep("x", size)
  req = wrk.format("POST", wrk.path, { ["Content-Type"] = "application/octet-stream" }, body)
end
request = function() return req end
