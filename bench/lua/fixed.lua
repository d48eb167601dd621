-- B0 and B5: the same GET on every request (path given as the first argument).
local path
function init(args)
  path = args[1] or "/"
end
function request()
  return wrk.format("GET", path)
end
