import torch,time
torch.set_num_threads(2)
for name,xs,ws in [("stage3",[128,64,7,7],[64,64,3,3]),("stage1",[128,16,28,28],[16,16,3,3]),("stage2",[128,32,14,14],[32,32,3,3])]:
    x=torch.randn(xs,requires_grad=True); w=torch.randn(ws,requires_grad=True)
    def med(f):
        ts=[]
        for i in range(15):
            t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
        ts.sort(); return ts[len(ts)//2]*1e3
    y=torch.nn.functional.conv2d(x,w,padding=1); g=torch.randn_like(y)
    fw=med(lambda: torch.nn.functional.conv2d(x,w,padding=1))
    dx=med(lambda: torch.ops.aten.convolution_backward(g,x,w,None,[1,1],[1,1],[1,1],False,[0,0],1,[True,False,False]))
    dw=med(lambda: torch.ops.aten.convolution_backward(g,x,w,None,[1,1],[1,1],[1,1],False,[0,0],1,[False,True,False]))
    print(name,"fwd %.2f dx %.2f dw %.2f"%(fw,dx,dw))
