-- wrk script shared by the benchmarks: PUT a 100-byte value to a new key each time.
local n = 0
wrk.method = "PUT"
wrk.body = string.rep("v", 100)
request = function()
    n = n + 1
    return wrk.format(nil, "/v1/k" .. n .. "-" .. math.random(1e9))
end
