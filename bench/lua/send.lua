-- B1: sendMessage round-robin over many instances.
-- Arguments: credentials file (lines "idInstance token"), chatId.
local creds = {}
local chat
local i = 0
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("offset", counter * 7919)
end

function init(args)
  for line in io.lines(args[1]) do
    local id, token = line:match("(%d+) (%x+)")
    if id then creds[#creds + 1] = { id, token } end
  end
  chat = args[2]
  i = tonumber(offset or 0)
end

local headers = { ["Content-Type"] = "application/json" }

function request()
  i = i + 1
  local c = creds[(i % #creds) + 1]
  local body = '{"chatId":"' .. chat .. '","message":"bench message ' .. i .. '"}'
  return wrk.format("POST", "/waInstance" .. c[1] .. "/sendMessage/" .. c[2], headers, body)
end
