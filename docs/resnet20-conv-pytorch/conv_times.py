import torch,time
torch.set_num_threads(2)
shapes=[("conv1",[128,1,28,28],[16,1,3,3],1),("stage1",[128,16,28,28],[16,16,3,3],1),("stage2",[128,32,14,14],[32,32,3,3],1),("stage3",[128,64,7,7],[64,64,3,3],1),("s2a",[128,16,28,28],[32,16,3,3],2),("s2b",[128,32,14,14],[64,32,3,3],2)]
for name,xs,ws,st in shapes:
    x=torch.randn(xs,requires_grad=(name!="conv1")); w=torch.randn(ws,requires_grad=True)
    ts=[]
    for i in range(12):
        t=time.perf_counter()
        y=torch.nn.functional.conv2d(x,w,stride=st,padding=1); y.sum().backward()
        ts.append(time.perf_counter()-t)
    ts.sort(); print(name, "%.2f ms"%(ts[len(ts)//2]*1e3))
